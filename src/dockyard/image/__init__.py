"""image layer (see DESIGN.md)."""
