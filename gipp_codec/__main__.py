"""``python -m gipp_codec`` runs the gimg command-line interface."""

from gipp_codec._entry import main

if __name__ == "__main__":
    main()
