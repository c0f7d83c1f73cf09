"""Mutation analysis: which plausible bugs do an exercise's checks miss (`dldiy mutate`)."""
