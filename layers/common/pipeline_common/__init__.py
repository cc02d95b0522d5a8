"""The shared library of the pipeline's functions, the local cloud and the CLI.

Pure logic only: nothing here reads environment variables or carries Powertools decorators.
"""
