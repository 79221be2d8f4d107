"""`python -m omakaiku api|worker|relay` starts one of the service's processes."""

from omakaiku.bootstrap import main

if __name__ == "__main__":
    main()
