"""``python -m harness …`` = ``empathy …`` (also what ``accelerate launch -m harness train …`` runs)."""

from harness.cli.main import entrypoint

if __name__ == "__main__":
    entrypoint()
