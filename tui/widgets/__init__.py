"""Widgets shared by the screens; each renders one part of a `RunView` or a run list."""
