print("loading the development data")
