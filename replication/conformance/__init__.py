"""The conformance kit: drive any implementation and the reference model side by side."""
