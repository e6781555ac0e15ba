"""Workflows: scripts that orchestrate agents, run in a sandbox (DESIGN.md section 7)."""
