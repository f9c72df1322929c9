"""The package version: a leaf module, so that files that record it (policies, checkpoints) need not import the
package top, which imports them."""

__version__ = "0.1.0"
