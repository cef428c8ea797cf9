"""prefect-canary: Kayenta-style canary analysis as a plain Python library.

Nothing under this package imports prefect; flows/, tasks/ and blocks/ wrap it.
"""

__version__ = "0.1.0"
