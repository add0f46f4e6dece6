from hfserve.cli import main

raise SystemExit(main())
