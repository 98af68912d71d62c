from thoughtgraph.cli import app

app()
