"""``tensorflow_model_server``'s command line, config files and Docker variables (issue #17)."""
