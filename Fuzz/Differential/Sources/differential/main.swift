import SproutParser
print("stub")
