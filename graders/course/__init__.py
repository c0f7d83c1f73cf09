"""The course an instructor keeps: exercise specs, the course's folders, bugged variants as patches,
handouts, alternatives, notebooks, the release and its leak scan, and validation."""
