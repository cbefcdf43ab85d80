from sipscribe.cli import main

raise SystemExit(main())
