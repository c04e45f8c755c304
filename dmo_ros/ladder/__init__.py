"""The ladder (DESIGN.md §8): rungs of increasing realism on which DMO must show that it learns."""
