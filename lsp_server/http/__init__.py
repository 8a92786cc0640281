"""The HTTP front door: llama.cpp's `/infill` and OpenAI's `/v1/completions` shapes on
the completion service, so that clients written for those servers get Inkling's
whole pipeline by changing a URL. Only this package imports Starlette and uvicorn."""
