from personseg.cli import main

raise SystemExit(main())
