"""Prefect blocks, loaded by name: the saved configuration a run builds its adapters from.

A block's type is registered by importing its module, so each type's module is imported on
demand (the Kubernetes client alone costs ~0.4 s of start-up, which a local release should
not pay). Registering a new kind of block (a metric store, a platform) is one line in
BLOCK_MODULES.
"""

from __future__ import annotations

import importlib
from typing import Any

from prefect.blocks.core import Block

from canary.errors import ConfigError

__all__ = ["BLOCK_MODULES", "load_block"]


#: Block type slug -> the module that defines it (imported on demand: the Kubernetes client
#: alone costs ~0.4 s of start-up, which a local release should not pay).
BLOCK_MODULES = {
    "local-platform": "blocks.local",
    "prometheus-source": "blocks.prometheus",
    "canary-kubernetes-cluster": "blocks.kubernetes",
}


def load_block(name: str) -> Any:  # the block's type is only known from the name, at run time
    """Load a block document by "<type-slug>/<name>", importing the type's module first.

    Args:
        name: ``<type-slug>/<document-name>``.

    Returns:
        The block (a platform or a metrics source block).

    Raises:
        ConfigError: The name is malformed or no such block is saved.
    """
    slug, _, document = name.partition("/")
    if not document or slug not in BLOCK_MODULES:
        raise ConfigError(
            f"block {name!r}: give it as <type-slug>/<document-name> with a slug among "
            f"{', '.join(sorted(BLOCK_MODULES))}"
        )
    importlib.import_module(BLOCK_MODULES[slug])  # registers the type for Block.load
    try:
        return Block.load(name)
    except ValueError as exc:
        raise ConfigError(
            f"block {name!r} could not be loaded ({exc}); create it with "
            "`python scripts/register_blocks.py`"
        ) from None
