"""Gates: control-relevant checks of every learned part (world model, local model, reward); DESIGN.md §8."""
