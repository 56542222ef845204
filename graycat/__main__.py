from graycat.cli import main

main()
