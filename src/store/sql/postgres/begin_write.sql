-- Writers run side by side; each locks the rows of the sagas it appends to.
BEGIN
