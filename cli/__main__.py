from dldiy.cli import main

main(prog_name="dldiy")
