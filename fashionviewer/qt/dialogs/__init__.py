"""Modal dialogs: training and export settings."""
