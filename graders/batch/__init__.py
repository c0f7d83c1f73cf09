"""Grading a class: find one submission per student (discover), grade them all (run), keep the
journal and gradebook (gradebook), and write what leaves dldiy (export)."""
