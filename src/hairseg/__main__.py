from hairseg.cli import main

main()
