"""Detect faces and align them to the template the model was trained with."""
