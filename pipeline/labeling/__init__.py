"""The labeling loop: find label errors, pre-label, take reviewed labels back, agree across annotators."""
