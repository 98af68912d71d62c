from thoughtgraph.evals.cli import app

app(prog_name="python -m thoughtgraph.evals")
