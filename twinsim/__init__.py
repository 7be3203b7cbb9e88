"""twinsim."""
