"""The Textual front end: app wiring, screens and widgets. Only this package imports textual."""
