from hfserve.cli import main

if __name__ == "__main__":  # also imported by spawned export processes
    raise SystemExit(main())
