"""Side-by-side sampling comparison and self-consistency voting (headless core, no UI)."""
