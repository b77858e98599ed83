"""``python -m msmmt`` runs the command line."""

from msmmt.cli import app

if __name__ == "__main__":
    app(prog_name="msmmt")
