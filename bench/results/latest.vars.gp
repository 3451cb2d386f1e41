placements = "cpu0 split"
procs = "1 2 4"
ncolumns = 9
linetypes = "1 2 3 4 5 6 7 8"
placement_title_1 = "all processes on CPU 0 (daemon too)"
placement_title_2 = "writers and daemon on CPU 0, readers on CPU 1"
