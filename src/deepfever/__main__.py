from deepfever.cli import main

raise SystemExit(main())
