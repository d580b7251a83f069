"""Types, validation and error codes shared by every layer; imports nothing of ours."""
