"""LangGraph graphs served by runplane: loading a project, running a graph as a run,
the fenced checkpointer."""
