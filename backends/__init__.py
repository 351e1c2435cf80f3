"""One module per backend; each is registered under the `segbench.backends` entry-point group."""
