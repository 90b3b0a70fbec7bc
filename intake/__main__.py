from intake.cli import app

app(prog_name="intake")
