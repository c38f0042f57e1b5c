"""Repository-level pytest settings. The plugin itself loads through its pytest11 entry point."""
