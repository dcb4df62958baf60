from emulators.cli import main

main()
