"""From a trained adapter to the GGUF file the server loads."""
