from bench.ingest.cli import main

main()
