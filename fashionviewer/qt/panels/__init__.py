"""Dockable panels of the main window; each subscribes to the ViewerSession's events."""
