"""The labeling loop: reviewed labels merged back as new dataset versions, pre-labels for review tools."""
