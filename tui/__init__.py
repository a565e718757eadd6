"""The labdeck dashboard: a Textual app that reads run directories and launches runners."""
