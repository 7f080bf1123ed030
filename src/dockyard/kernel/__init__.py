"""kernel layer (see DESIGN.md)."""
