"""Tests of the business modules, one package per module."""
