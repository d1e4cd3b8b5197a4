"""Red teaming: automated attacks on a model, and the export that turns its successful attacks into training data."""
