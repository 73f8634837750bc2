#!/usr/bin/env python3
"""Writes orders.xls, the Excel 97-2003 workbook of tests/sources.rs, with xlwt (a real .xls
writer; `pip install xlwt`): a "Notes" sheet first, then "Orders", holding whole and decimal
numbers, dates and date-times in local display formats, booleans, text with commas and line
breaks, an empty cell inside a row and at its end, and a blank row.

    python3 tests/data/make_orders_xls.py tests/data/orders.xls
"""
import datetime
import sys

import xlwt

book = xlwt.Workbook()
notes = book.add_sheet("Notes")
notes.write(0, 0, "Note")
notes.write(1, 0, "see the Orders sheet")
orders = book.add_sheet("Orders")
day = xlwt.easyxf(num_format_str="dd/mm/yyyy")
stamp = xlwt.easyxf(num_format_str="d mmm yyyy h:mm AM/PM")
money = xlwt.easyxf(num_format_str="#,##0.00")
for c, h in enumerate(["Order ID", "Customer", "Amount", "Ordered on", "Shipped at", "Paid", "Note"]):
    orders.write(0, c, h)
orders.write(1, 0, 1)
orders.write(1, 1, "Ann, Ltd.")
orders.write(1, 2, 12.5, money)
orders.write(1, 3, datetime.date(2024, 3, 1), day)
orders.write(1, 4, datetime.datetime(2024, 3, 2, 14, 30), stamp)
orders.write(1, 5, True)
orders.write(1, 6, 'first line\nsecond, with "quotes"')
orders.write(2, 0, 2)
orders.write(2, 1, "Bob")
orders.write(2, 2, 1234567.891)
orders.write(2, 3, datetime.date(2023, 12, 31), day)
orders.write(2, 5, False)
# Row 4 is blank; row 5.
orders.write(4, 0, 3)
orders.write(4, 1, "Cy")
orders.write(4, 2, 0.1)
orders.write(4, 3, datetime.date(2024, 2, 29), day)
orders.write(4, 5, True)
book.save(sys.argv[1])
