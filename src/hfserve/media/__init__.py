"""Decoding of media that requests carry (audio, images) into model inputs."""
