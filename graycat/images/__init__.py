"""Image generation parts shared by the api and the SD worker that need no torch: checkpoints, samplers,
A1111 infotexts, image encoding."""
