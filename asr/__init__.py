"""Offline transcription: the Vosk engine wrapper, durable transcription jobs and the worker pool."""
