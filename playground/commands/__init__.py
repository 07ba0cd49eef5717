"""Sub-commands of the ``playground`` CLI; each module has one ``run(args) -> int``."""
